"""Fakes of the outside world (Entra ID and Microsoft Graph, mail, clocks) for tests and benchmarks."""
