"""medpipe: compress medical image volumes with archive codecs, measure what each saves and loses."""

__version__ = "0.1.0"
