"""Where packets travel between the collectors and the engine: topic names and the local stack's
broker (`netspectra stack up`), the default of both."""

LOCAL_KAFKA = "127.0.0.1:19092"
PACKETS_TOPIC = "netspectra.packets"
DEAD_LETTER_TOPIC = "netspectra.dead-letter"      # messages the engine could not read, with the reason
