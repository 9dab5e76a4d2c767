"""Diameter Gy/Ro front end (RFC 6733, RFC 8506, 3GPP TS 32.299): a sibling of api/ onto the same core."""
