"""The content repository: uploads, downloads and thumbnails of media (`mxc://` URIs)."""
