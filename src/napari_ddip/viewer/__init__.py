"""The napari face: readers, writers, sample data and dock widgets (registered in napari.yaml).

Modules here may import napari, magicgui and Qt; the engine (everything outside this package)
never does. torch is imported only inside functions, when work starts.
"""
