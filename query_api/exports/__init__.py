"""eDiscovery exports: a ZIP bundle of RSMF 2.0 files, EML per room-day, JSON lines or CSV, with a manifest.

``bundle.write_bundle`` builds one from the archive (for ``chat-archive export``
and the API's export jobs); ``manifest.verify_bundle`` checks one without the archive.
"""
