"""
Connections: provider streams (``upstream``) and their slots (``registry``), channels
(``channel``), viewers (``out``) and the manager that answers ``/stream/{id}.ts``.
"""
