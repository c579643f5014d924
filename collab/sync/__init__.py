"""Real-time sync: the Yjs websocket protocol, rooms of one shared document per case."""
