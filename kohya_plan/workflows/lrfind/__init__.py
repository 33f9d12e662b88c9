"""The tutorial's learning-rate search (T19-T21): a short adaptive run, its plateau, a new plan."""
