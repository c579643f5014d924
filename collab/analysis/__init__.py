"""Slide analyses ("AI triage"): pure CPU code that reads a slide and returns a Result.

Nothing here knows about the web layer; an analysis is handed a slide that can be read
(``base.SlideView``, which a ``tiffslide.TiffSlide`` is as it stands) and a progress callback.
"""
