"""What a person looks at: overlays and montages, charts, tables, summaries, progress."""
