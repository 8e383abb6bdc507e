"""The embedded demo: the bundled tiny CLIP (`ltbench-demo`) and how it was pre-trained."""
