"""Reading and writing images, masks and volumes (with geometry), working size and
buckets, synthetic data, and the data-set layouts (`datasets`)."""
