"""The pure core: readings, geodata, tides, series, the depth model, events, validation,
what is known and source health. It imports no database, HTTP, Telegram or clock
(only the standard library, numpy, shapely, pyproj, pyTMD/utide, pydantic and
`floodwatch.errors`)."""
