"""Prisjakt's Click & Conversion API: ``PrisjaktClient`` and its parts.

``client`` (one ``requests.Session`` a process, the API's calls), ``auth``
(OAuth2 client credentials, the bearer token), ``transport`` (timeouts, a
total deadline, size caps), ``pagination`` and ``links`` (the listing's Link
pages), ``problems`` (problem details to ``PrisjaktAPIError``), ``payloads``
(the API's field formats). Nothing here touches the shop's tables.
"""
