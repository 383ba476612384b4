"""DICOM output (floor 2): PS3.5 syntax facts and checks (:mod:`.syntaxes`), codestreams from stored values
(:mod:`.codestreams`), header rules shared with archive restore (:mod:`.header`), the writer the matrix calls for
each verified cell (:mod:`.writer`), and sending to a DICOM node (:mod:`.send`). This package imports nothing."""
