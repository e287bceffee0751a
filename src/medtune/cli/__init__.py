"""The ``medtune`` command line (`main`): one module per command (`train`, `evaluate`, `predict`, `calibrate`, `guard`,
`explain`, `report`, `export`, `serve`, `segment`, `data`, `audit`, `embed`, `probe`, `similar`, `crossdomain`,
`ensemble`, `queue`, `tune`, `cache`), with `_common` (reading ``--config`` and ``key=value``) and `_render` (tables).
"""
