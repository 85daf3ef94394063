"""Settings, errors, column contracts and vocabulary; imports nothing else of tierwise."""
