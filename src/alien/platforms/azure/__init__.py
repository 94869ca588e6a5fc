"""Azure: Blob storage calls of a debug session, signed with Shared Key."""
