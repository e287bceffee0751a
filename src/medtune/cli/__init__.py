"""The ``medtune`` command line (`main`): one module per command (`train`, `evaluate`, `predict`, `calibrate`, `guard`,
`explain`, `report`, `export`, `serve`, `segment`, `data`, `audit`, `embed`, `probe`, `similar`, `crossdomain`,
`ensemble`, `queue`, `tune`, `cache`, `keys`), with `_common` (reading ``--config`` and ``key=value``, ``--json``),
`_render` (tables), `_spelling` (one spelling per concept, and the old spellings) and `_help` (how ``--help`` reads).
"""
