"""Reference platform clients written from shared/reference/platform-apis.md.

They deliberately import nothing from ``sandbox``: a signature both sides
compute with the same code would prove nothing.
"""
