"""Pictures of what a network has learned: feature visualisation, exemplars, filters, style, embeddings, rendering."""
