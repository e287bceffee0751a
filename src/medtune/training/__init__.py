"""Plain-PyTorch building blocks of training, without Lightning: optimizers and learning-rate schedules
(`optim`), losses (`losses`, and smp's segmentation losses in `segment_losses`), augmentation presets (`augment`),
class and sample weights (`sampling`), the per-epoch metrics (`epoch_metrics`) and the thread count that follows
the free cores (`threads`). Each kind of component is a registry; the configuration's names are checked against
them (`medtune.runs.check_names`).
"""
