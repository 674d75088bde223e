"""One scanner per model format; each takes (context, stream, size, location, depth)."""
