"""sd-scripts' own maths: aspect-ratio buckets and step counts (pure)."""
