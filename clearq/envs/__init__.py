"""Environment builders and their cache; pure: an EnvSpec in, an interpreter out."""
