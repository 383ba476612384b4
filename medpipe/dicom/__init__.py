"""DICOM output (floor 2). :mod:`.syntaxes` the output's names for rows of the one table of
transfer syntaxes (:mod:`medpipe.syntaxes`); :mod:`.codestreams` the encapsulation of frames the frame coders
(:mod:`medpipe.codecs.frames`) code from stored values; :mod:`.streaminfo` what a codestream says about itself; :mod:`.validate` the per-syntax
checks and decoders; :mod:`.header` derived-instance rules (shared with archive restore); :mod:`.part10` one file
and its ``dicom_bytes``; :mod:`.writer` the sink the matrix calls per verified cell; :mod:`.video` H.264 / HEVC
objects; :mod:`.send` C-STORE; :mod:`.deliver` what happens after the matrix (extra series, sending). This package
imports nothing above it."""
