// Example Logic App (Consumption): creates a rollout through the Operator API, follows it to
// its approval gate, asks a person (HTTP webhook with a callback), then approves or cancels.
// The definition lives in infra/workflows/rollout-approval.json.
//
// The function key, without racing the host: function keys are kept by the Functions host
// itself (the keys API of a site answers only once its host runs), so reading or creating one
// in the deployment that creates the Function App fails while the host has not started.
// main.bicep therefore deploys this module only with codeDeployed=true: after the code is
// deployed and the host has started (azd: the postdeploy provision; az: the second
// deployment). The key is then either a key of the Logic App's own ("logicapp", created here
// with the value the deployment is given, so it can be revoked alone and stays the same from
// one deployment to the next: a value generated per deployment, e.g. newGuid(), would replace
// the key under runs that are still waiting for an approval), or, when no value is given, the
// host's default key read with listKeys. The key goes into the connection of the custom
// connector (parameterValues.api_key of Microsoft.Web/connections, a secret the connection
// keeps and never shows), never into the workflow definition, its parameters or its run
// history: the actions that use it carry no key of their own.
//
// The connector: a custom connector (Microsoft.Web/customApis) made from
// infra/connector/patchwave.swagger.json, the OpenAPI 2.0 document `patchwave openapi --v2`
// prints (what GET /api/swagger.json serves), committed so that the deployment needs no call
// to the app: every /api route, swagger.json included, sits behind the function key, so
// importing it by URL (apiDefinitions.originalSwaggerUrl) would need the key written into a
// URL anyone who can read the resource group can read. The file is generated, never edited:
// tests/infra.rs compares it with the document the code generates and names the command that
// regenerates it (cargo run -- openapi --v2 > infra/connector/patchwave.swagger.json). Its
// security definition is the apiKey header x-functions-key, so the connection takes the key as
// the connection parameter api_key; the document has no host and the connector calls the
// Function App at backendService.serviceUrl. The workflow creates, reads and cancels through it
// (ApiConnection actions with the document's paths; tests/infra.rs checks that every one is an
// operation of the document). Cancel also sends Idempotency-Key, which the API reads on every
// command (a retried cancel is applied once) but the document declares for create only.
//
// What stays an HTTP action, and why: the approval. The Operator API refuses approvals to
// function keys (an approval needs a named principal), so the connector, whose only security
// is the function key, cannot approve; the Approve action is an HTTP action authenticated with
// the Logic App's managed identity (authentication ManagedServiceIdentity, audience
// operatorApiAudience), which App Service Authentication turns into a principal with the app
// role Rollout.Approve. The webhook that asks a person is an HTTP webhook to a URL of the
// deployment's choosing, not a call to the Operator API.

param name string
param location string
param tags object

@description('Name of the Function App serving the Operator API.')
param functionAppName string

@description('Value of a function key of the Logic App\'s own (key "logicapp"); empty to use the host\'s default key.')
@secure()
param functionKey string = ''

@description('Audience of App Service Authentication (e.g. api://<client id>); the approval call uses the Logic App\'s managed identity.')
param operatorApiAudience string

@description('Webhook told about pending approvals (see the workflow definition).')
param approvalNotificationUrl string

@description('Default host name of the Function App.')
param functionAppHostName string

var keyName = 'logicapp'

// A host-level function key of its own: revoke it alone with
// az functionapp keys delete -g RG -n APP --key-type functionKeys --key-name logicapp
resource logicAppKey 'Microsoft.Web/sites/host/functionKeys@2024-04-01' = if (!empty(functionKey)) {
  name: '${functionAppName}/default/${keyName}'
  properties: {
    name: keyName
    value: functionKey
  }
}

var key = empty(functionKey) ? listKeys(resourceId('Microsoft.Web/sites/host', functionAppName, 'default'), '2024-04-01').functionKeys.default : functionKey

// The connector, from the committed document (regenerate it, never edit it: see above).
resource connector 'Microsoft.Web/customApis@2016-06-01' = {
  name: '${name}-connector'
  location: location
  tags: tags
  properties: {
    displayName: 'patchwave Operator API (${functionAppName})'
    description: 'Operator API of patchwave: create, read, pause, resume, cancel and roll back rollouts; compliance and dead letters. Generated from patchwave openapi --v2.'
    apiType: 'Rest'
    swagger: loadJsonContent('../connector/patchwave.swagger.json')
    backendService: {
      serviceUrl: 'https://${functionAppHostName}'
    }
    // the document's only security definition: the apiKey header x-functions-key
    connectionParameters: {
      api_key: {
        type: 'securestring'
      }
    }
  }
}

// The workflow's connection: the function key as the connector's api_key.
resource connection 'Microsoft.Web/connections@2016-06-01' = {
  name: '${name}-patchwave'
  location: location
  tags: tags
  properties: {
    displayName: 'patchwave Operator API'
    api: {
      id: connector.id
    }
    parameterValues: {
      api_key: key
    }
  }
  dependsOn: [
    logicAppKey
  ]
}

resource workflow 'Microsoft.Logic/workflows@2019-05-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    state: 'Enabled'
    definition: loadJsonContent('../workflows/rollout-approval.json')
    parameters: {
      '$connections': {
        value: {
          patchwave: {
            connectionId: connection.id
            connectionName: connection.name
            id: connector.id
          }
        }
      }
      functionAppUrl: {
        value: 'https://${functionAppHostName}'
      }
      operatorApiAudience: {
        value: operatorApiAudience
      }
      approvalNotificationUrl: {
        value: approvalNotificationUrl
      }
    }
  }
}

output name string = workflow.name
@description('Object id to grant the app role Rollout.Approve on the Operator API\'s app registration.')
output principalId string = workflow.identity.principalId
@description('Name of the function key the workflow sends: "logicapp", or "default" when no value was given.')
output functionKeyName string = empty(functionKey) ? 'default' : keyName
