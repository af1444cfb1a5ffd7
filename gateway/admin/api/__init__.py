"""The JSON API under /api, one router per area; OpenAPI at /api/docs."""
