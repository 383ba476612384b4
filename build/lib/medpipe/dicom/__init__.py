"""DICOM output (floor 2): PS3.5 syntax facts and checks (:mod:`.syntaxes`), header rules shared with archive
restore (:mod:`.header`), the writer the matrix calls for each verified cell (:mod:`.writer`)."""
