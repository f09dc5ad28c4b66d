"""Vietnamese messages: alert and bulletin composition, alarm texts, Telegram HTML
helpers and hydrograph drawing. Pure: data in, text or PNG out; may import the core and
`floodwatch.errors`, never the database, HTTP or Telegram."""
