"""The numpy mel filterbank of core.features.mel equals librosa's (which the references were made with)."""

import numpy as np
import pytest

from core.features import mel


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax", "htk"),
    [
        (44100, 2048, 128, 40.0, 16000.0, False),  # NSF-HiFiGAN
        (16000, 1024, 128, 30.0, 8000.0, True),  # RMVPE
        (16000, 1024, 128, 0.0, 8000.0, False),  # FCPE
        (22050, 1024, 80, 0.0, 11025.0, False),
        (48000, 2048, 40, 500.0, 4000.0, False),  # band edges on both sides of the Slaney break
    ],
)
def test_mel_basis_equals_librosa(sr, n_fft, n_mels, fmin, fmax, htk):
    import librosa

    ours = mel.mel_basis.__wrapped__(sr, n_fft, n_mels, fmin, fmax, htk)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)
    assert not ours.flags.writeable
