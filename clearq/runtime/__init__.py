"""The agent: worker loop, executor and machine monitor."""
