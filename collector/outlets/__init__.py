"""The outlets room: where records leave the collector."""
