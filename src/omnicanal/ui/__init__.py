"""The read-only web dashboard served at /ui: journeys, customers, operations and template previews."""
