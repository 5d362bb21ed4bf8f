"""MONAI Label integration: an app with one infer task per volgan bundle, and `volgan label serve`.

MONAI Label is an optional dependency (``pip install 'volgan[label]'``); nothing here imports it
until the server starts.
"""
