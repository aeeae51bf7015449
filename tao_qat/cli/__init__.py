"""The ``qat`` command line: click commands that parse flags and call one ``run_*`` function."""
