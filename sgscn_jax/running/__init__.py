"""Running a method over a data set: one run core for images and volumes (resume, failures,
summaries), the image and volume drivers, distributed runs, comparisons and rescoring."""
