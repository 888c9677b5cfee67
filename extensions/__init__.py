"""Plug-ins found at start-up: the built-in ControlNet annotators and user extensions dropped in this folder."""
