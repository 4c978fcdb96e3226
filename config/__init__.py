"""Config files, run by train.py and the tools (helpers/config.configure). A package, so that one config can
take another's values with an ordinary import: `from config.sweeps.compare_shakespeare_char import common`."""
