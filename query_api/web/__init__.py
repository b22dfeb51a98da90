"""Server-rendered web pages, sign-in and the embeddable room widget (a Flask blueprint)."""
