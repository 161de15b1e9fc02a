"""The DigiTwin core: directory, values, action queue, twin cache and notifications."""
