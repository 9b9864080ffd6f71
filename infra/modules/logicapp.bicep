// Example Logic App (Consumption): creates a rollout through the Operator API, follows it to
// its approval gate, asks a person (HTTP webhook with a callback), then approves or cancels.
// The definition lives in infra/workflows/rollout-approval.json.

param name string
param location string
param tags object

@description('Name of the Function App serving the Operator API.')
param functionAppName string

@description('Function key the workflow sends (x-functions-key); empty to read the host\'s default key at deployment.')
@secure()
param functionKey string = ''

@description('Audience of App Service Authentication (e.g. api://<client id>); the approval call uses the Logic App\'s managed identity.')
param operatorApiAudience string

@description('Webhook told about pending approvals (see the workflow definition).')
param approvalNotificationUrl string

@description('Default host name of the Function App.')
param functionAppHostName string

var key = empty(functionKey) ? listKeys(resourceId('Microsoft.Web/sites/host', functionAppName, 'default'), '2024-04-01').functionKeys.default : functionKey

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
      functionAppUrl: {
        value: 'https://${functionAppHostName}'
      }
      functionKey: {
        value: key
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
