"""The HTML report of a run (`write_report`) and the comparison of several (`write_comparison`)."""
