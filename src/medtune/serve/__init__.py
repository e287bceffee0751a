"""``medtune serve``: a model behind a small, safe web service and a page to drop images on."""
