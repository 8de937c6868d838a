B	initial_cJm‹¼ƒ½¿UÑ	@e¿ñ‹à¿µÇ
?