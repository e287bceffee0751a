"""Plain-PyTorch building blocks of training, without Lightning: optimizers and learning-rate schedules
(`optim`), losses (`losses`), augmentation presets (`augment`), class and sample weights (`sampling`) and the
per-epoch metrics (`metrics`). Each kind of component is a registry; the configuration's names are checked
against them (`medtune.runs.check_names`)."""
