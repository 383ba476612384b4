"""DICOM output: PS3.5 transfer syntax rules, codestreams from stored values, encapsulation, header rules, the
writer, and sending to a DICOM node (floor 2). Import the submodules you need; this package imports nothing."""
