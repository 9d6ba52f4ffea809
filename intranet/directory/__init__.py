"""Who works here: the Entra ID / Microsoft Graph wire level, the HR feed, and their sync."""
