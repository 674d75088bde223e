"""Scanner tests: the malicious and benign corpora are built here at run time."""
