"""kubectl's exec credential plugin (``kubejit token``): plugin.py (the cached path, stdlib only),
cache.py (the token cache entries), refresh.py (a miss: lock, broker, messages), broker.py (its one
HTTP call, over urllib). It sits below the CLI and imports nothing of the broker's side.
"""
