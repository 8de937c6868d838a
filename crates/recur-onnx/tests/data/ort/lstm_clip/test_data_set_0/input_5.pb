B	initial_cJ¿’?¶g¾־%¾¿C
?h ְּ4ק¿