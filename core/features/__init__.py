"""Feature extraction: content units, F0, loudness and mel, all aligned on the mel frame grid."""
