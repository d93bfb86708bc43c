"""adsync: Azure AD Connect's view of Active Directory — DNS per server, DC ports, tenant sync."""
