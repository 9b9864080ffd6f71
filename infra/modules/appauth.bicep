// App Service Authentication (Entra ID) on the Function App.
//
// App Service Authentication validates Entra tokens and hands patchwave the principal
// (X-MS-CLIENT-PRINCIPAL). Anonymous requests still reach the app so that function keys and
// Event Grid deliveries keep working; patchwave itself answers 401 to callers with neither.
// Checkov reads every sites/config resource as the v1 "web"/"authsettings" document; this one
// is authsettingsV2, which has none of the properties those checks look for (skips below).

@description('Name of the Function App.')
param siteName string

@description('Client id of the Entra app registration whose tokens the app accepts.')
param clientId string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13:False positive: authentication is on here (authsettingsV2 platform.enabled); the check only knows v1 authsettings.enabled.
  // checkov:skip=CKV_AZURE_63:Not a "web"/"logs" config: HTTP logging does not apply to authsettingsV2 (the host's telemetry goes to Application Insights).
  // checkov:skip=CKV_AZURE_65:Not a "web"/"logs" config: detailed error messages do not apply to authsettingsV2.
  // checkov:skip=CKV_AZURE_66:Not a "web"/"logs" config: failed request tracing does not apply to authsettingsV2.
  // checkov:skip=CKV_AZURE_80:Not a "web" config, and the app runs no .NET Framework (custom handler).
  // checkov:skip=CKV_AZURE_88:Not a "web" config; Azure Files is where Elastic Premium keeps content (WEBSITE_CONTENTSHARE).
  // checkov:skip=CKV_AZURE_222:Not a "web" config; public network access is set on the site (see its CKV_AZURE_222 note).
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${clientId}'
            clientId
          ]
        }
      }
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

