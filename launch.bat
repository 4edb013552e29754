@echo off
rem svcover launcher for Windows: double-click to install (first run only) and start the web UI.
rem   launch.bat [app options]   install into .venv and start the UI in your browser (e.g. launch.bat --share)
rem   launch.bat test [...]      install test tools too and run the test suite (extra args go to pytest)
rem   launch.bat cli ...         run python -m core ... inside the venv
rem   launch.bat plan            print the install plan as one JSON line; installs nothing
rem Everything that can be decided is decided by core\bootstrap.py (tested on Linux); this file only finds
rem a 64-bit Python 3.11-3.13, hands over ALL arguments and keeps the window open when something fails.
rem No delayed expansion: the folder path may contain spaces, "!" or non-ASCII letters.
setlocal EnableExtensions DisableDelayedExpansion
cd /d "%~dp0" || (echo [svcover] error: cannot enter the svcover folder & pause & exit /b 1)
set "PYTHONUTF8=1"

set "PY="
if exist ".venv\Scripts\python.exe" set "PY=.venv\Scripts\python.exe"
if defined PY goto run
for %%V in (3.13 3.12 3.11) do (
  if not defined PY (
    py -%%V -m core.bootstrap probe >nul 2>&1 && set "PY=py -%%V"
  )
)
if not defined PY (
  python -m core.bootstrap probe >nul 2>&1 && set "PY=python"
)
if not defined PY (
  echo [svcover] error: no 64-bit Python 3.11-3.13 was found. Install Python 3.13 ^(64-bit^) from python.org, tick "Add python.exe to PATH", then run launch.bat again.
  python -m core.bootstrap probe
  pause
  exit /b 1
)

:run
%PY% -m core.bootstrap %*
set "RC=%ERRORLEVEL%"
if not "%RC%"=="0" (
  echo [svcover] stopped with exit code %RC% - the message above says why.
  pause
)
exit /b %RC%
