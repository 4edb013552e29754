@echo off
rem svcover launcher for Windows: double-click to install (first run only) and start the web UI.
rem   launch.bat            install into .venv and start the UI in your browser
rem   launch.bat test       install test tools too and run the test suite
rem Idempotent: a stamp per requirements file records what was installed; a second run starts in seconds.
setlocal EnableExtensions EnableDelayedExpansion
cd /d "%~dp0"

set "TORCH_VERSION=2.13.0"
rem CUDA wheel index for NVIDIA cards (12.8 builds cover GTX 10xx/16xx through RTX 50xx).
if not defined SVCOVER_CUDA_INDEX set "SVCOVER_CUDA_INDEX=https://download.pytorch.org/whl/cu128"
set "MODE=%~1"
if "%MODE%"=="" set "MODE=run"

if exist ".venv\Scripts\python.exe" goto have_venv
set "PY="
for %%V in (3.11 3.12 3.10) do (
  if not defined PY (
    py -%%V -c "import sys" >nul 2>&1 && set "PY=py -%%V"
  )
)
if not defined PY (
  python -c "import sys; sys.exit(0 if (3,10) <= sys.version_info[:2] <= (3,12) else 1)" >nul 2>&1 && set "PY=python"
)
if not defined PY (
  echo [svcover] error: Python 3.10-3.12 was not found. Install Python 3.11 from python.org ^(tick "Add to PATH"^) and run launch.bat again.
  pause
  exit /b 1
)
echo [svcover] creating .venv with %PY%
%PY% -m venv .venv || (echo [svcover] error: could not create .venv & pause & exit /b 1)

:have_venv
set "PYBIN=.venv\Scripts\python.exe"
set "FILES=requirements.txt requirements-nodeps.txt"
if /i "%MODE%"=="test" set "FILES=requirements.txt requirements-nodeps.txt requirements-test.txt"
set "INSTALLED=0"
for %%F in (%FILES%) do (
  for /f "usebackq delims=" %%H in (`%PYBIN% -c "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())" %%F`) do set "WANT=%%H torch=%TORCH_VERSION%"
  set "HAVE="
  if exist ".venv\.svcover-installed-%%F" set /p HAVE=<".venv\.svcover-installed-%%F"
  if not "!HAVE!"=="!WANT!" (
    if "!INSTALLED!"=="0" call :install_torch || (pause & exit /b 1)
    echo [svcover] installing %%F
    set "NODEPS="
    if "%%F"=="requirements-nodeps.txt" set "NODEPS=--no-deps"
    %PYBIN% -m pip install !NODEPS! -r %%F || (echo [svcover] error: installing %%F failed & pause & exit /b 1)
    > ".venv\.svcover-installed-%%F" echo !WANT!
    set "INSTALLED=1"
  )
)
if "%INSTALLED%"=="1" (
  rem Separation runs on onnxruntime: use the CUDA build when an NVIDIA GPU is present.
  where nvidia-smi >nul 2>&1 && nvidia-smi -L >nul 2>&1 && (
    %PYBIN% -m pip uninstall -y onnxruntime >nul 2>&1
    %PYBIN% -m pip install onnxruntime-gpu==1.31.1 || %PYBIN% -m pip install onnxruntime==1.31.1
  )
  %PYBIN% -m core doctor || echo [svcover] doctor reported problems ^(see above^); the app starts anyway
)

if /i "%MODE%"=="test" (
  %PYBIN% -m pytest tests %2 %3 %4 %5 %6
  exit /b !errorlevel!
)
%PYBIN% app.py --inbrowser %2 %3 %4 %5 %6
exit /b %errorlevel%

:install_torch
%PYBIN% -m pip install --upgrade --quiet pip
%PYBIN% -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='%TORCH_VERSION%' else 1)" >nul 2>&1 && exit /b 0
where nvidia-smi >nul 2>&1 && nvidia-smi -L >nul 2>&1
if %errorlevel%==0 (
  echo [svcover] NVIDIA GPU found: installing torch %TORCH_VERSION% with CUDA
  %PYBIN% -m pip install torch==%TORCH_VERSION% --index-url %SVCOVER_CUDA_INDEX% && exit /b 0
  echo [svcover] CUDA build failed to install; falling back to the CPU build
)
echo [svcover] installing torch %TORCH_VERSION% ^(CPU^)
%PYBIN% -m pip install torch==%TORCH_VERSION%
exit /b %errorlevel%
