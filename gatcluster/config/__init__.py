"""Settings: params.yaml as frozen dataclasses, presets and in-place edits, checks against the data."""
